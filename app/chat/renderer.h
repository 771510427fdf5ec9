// The window and its Vulkan swapchain, drawn by Dear ImGui. Structured after Dear ImGui's own
// example_glfw_vulkan, plus an offscreen capture of a frame to PNG for the headless test.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#define GLFW_INCLUDE_NONE
#define GLFW_INCLUDE_VULKAN
#include <GLFW/glfw3.h>
#include <imgui_impl_vulkan.h>
#include <vulkan/vulkan.h>

struct ImFont;

namespace nibble::chat {

struct Fonts {
  ImFont* text = nullptr;  // proportional, for prose and the UI
  ImFont* mono = nullptr;  // monospaced, for code blocks
  ImFont* large = nullptr;
};

class Renderer {
 public:
  static constexpr int kMinWidth = 960, kMinHeight = 600;

  // Opens the window and its Vulkan device; throws std::runtime_error when either is impossible.
  Renderer(int width, int height, const char* title);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  bool should_close() const { return glfwWindowShouldClose(window_); }
  // Sleeps until an input event or `timeout` seconds, so an idle window costs no CPU.
  void wait_events(double timeout) { glfwWaitEventsTimeout(timeout); }
  void begin_frame();  // rebuilds the swapchain after a resize, starts an ImGui frame
  void end_frame();    // renders the ImGui frame and presents it

  // Renders the last finished ImGui frame into an offscreen image and writes it as PNG.
  void save_png(const std::filesystem::path& path);

  const Fonts& fonts() const { return fonts_; }
  void set_title(const std::string& title);
  std::string device_name() const;
  // The device the engine should run on, in vkEnumeratePhysicalDevices order: ours when it is a
  // GPU, so that one device holds the model and the frames; -1 (the engine's best) when we draw
  // with a software rasterizer, e.g. on a server whose GPU cannot present to this display.
  int engine_device() const { return software_ ? -1 : device_index_; }
  uint64_t device_local_bytes() const;  // largest device-local heap

 private:
  void create_device();
  void create_swapchain(int width, int height);
  void init_imgui();
  void load_fonts();
  void render(ImDrawData* draw_data);
  void present();

  GLFWwindow* window_ = nullptr;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  int device_index_ = 0;
  bool software_ = false;  // a CPU device (lavapipe, SwiftShader)
  VkDevice device_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  VkSurfaceKHR surface_ = VK_NULL_HANDLE;
  ImGui_ImplVulkanH_Window wd_{};
  static constexpr int kMinImageCount = 2;
  bool rebuild_swapchain_ = false;
  bool imgui_ready_ = false;
  Fonts fonts_;
};

}  // namespace nibble::chat

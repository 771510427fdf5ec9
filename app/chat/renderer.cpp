#include "app/chat/renderer.h"

#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <stb_image_write.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace nibble::chat {

namespace {

// Our own Vulkan entry points, loaded through GLFW from our instance. The engine's volk keeps
// process-wide pointers loaded from *its* instance, which lacks the window-system extensions;
// these, in this file's namespace, shadow them.
#define NIBBLE_RENDERER_VULKAN_FUNCTIONS(X)                                                    \
  X(vkDestroyInstance)                                                                         \
  X(vkEnumeratePhysicalDevices)                                                                \
  X(vkGetPhysicalDeviceProperties)                                                             \
  X(vkGetPhysicalDeviceQueueFamilyProperties)                                                  \
  X(vkGetPhysicalDeviceSurfaceSupportKHR)                                                      \
  X(vkGetPhysicalDeviceMemoryProperties)                                                       \
  X(vkCreateDevice)                                                                            \
  X(vkDestroyDevice)                                                                           \
  X(vkGetDeviceQueue)                                                                          \
  X(vkCreateDescriptorPool)                                                                    \
  X(vkDestroyDescriptorPool)                                                                   \
  X(vkDestroySurfaceKHR)                                                                       \
  X(vkDeviceWaitIdle)                                                                          \
  X(vkResetCommandPool)                                                                        \
  X(vkBeginCommandBuffer)                                                                      \
  X(vkEndCommandBuffer)                                                                        \
  X(vkQueueSubmit)                                                                             \
  X(vkAcquireNextImageKHR)                                                                     \
  X(vkWaitForFences)                                                                           \
  X(vkResetFences)                                                                             \
  X(vkCmdBeginRenderPass)                                                                      \
  X(vkCmdEndRenderPass) X(vkQueuePresentKHR) X(vkCreateImage) X(vkGetImageMemoryRequirements)  \
      X(vkAllocateMemory) X(vkBindImageMemory) X(vkCreateImageView) X(vkCreateRenderPass)      \
          X(vkCreateFramebuffer) X(vkCreateBuffer) X(vkGetBufferMemoryRequirements)            \
              X(vkBindBufferMemory) X(vkCreateCommandPool) X(vkAllocateCommandBuffers)         \
                  X(vkCmdCopyImageToBuffer) X(vkMapMemory) X(vkUnmapMemory)                    \
                      X(vkDestroyCommandPool) X(vkDestroyBuffer) X(vkFreeMemory)               \
                          X(vkDestroyFramebuffer) X(vkDestroyRenderPass) X(vkDestroyImageView) \
                              X(vkDestroyImage)
#define NIBBLE_DECLARE(name) PFN_##name name = nullptr;
NIBBLE_RENDERER_VULKAN_FUNCTIONS(NIBBLE_DECLARE)
#undef NIBBLE_DECLARE

PFN_vkVoidFunction load_function(VkInstance instance, const char* name) {
  auto f = reinterpret_cast<PFN_vkVoidFunction>(glfwGetInstanceProcAddress(instance, name));
  if (!f) throw std::runtime_error(std::string("renderer: the Vulkan loader lacks ") + name);
  return f;
}

void load_functions(VkInstance instance) {
#define NIBBLE_LOAD(name) name = reinterpret_cast<PFN_##name>(load_function(instance, #name));
  NIBBLE_RENDERER_VULKAN_FUNCTIONS(NIBBLE_LOAD)
#undef NIBBLE_LOAD
}

void check(VkResult r, const char* what = "Vulkan call") {
  if (r == VK_SUCCESS) return;
  // A GPU reset can take the window's own device too (the engine's is separate): nothing can be
  // drawn any more, so the app ends with this message rather than a bare number.
  if (r == VK_ERROR_DEVICE_LOST)
    throw std::runtime_error(std::string("renderer: the window's Vulkan device was lost in ") +
                             what +
                             " (GPU fault, driver reset or timeout); start nibble-chat again");
  throw std::runtime_error(std::string("renderer: ") + what + " failed (VkResult " +
                           std::to_string(int(r)) + ")");
}
void check_for_imgui(VkResult r) {
  check(r, "Dear ImGui Vulkan backend");
}

void on_glfw_error(int code, const char* description) {
  std::fprintf(stderr, "nibble-chat: GLFW error %d: %s\n", code, description);
}

// Lower is better: a discrete GPU first (where the model runs fastest), software rasterizers last.
int device_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    default:
      return 3;
  }
}

uint32_t find_memory_type(VkPhysicalDevice physical, uint32_t type_bits,
                          VkMemoryPropertyFlags flags) {
  VkPhysicalDeviceMemoryProperties props;
  vkGetPhysicalDeviceMemoryProperties(physical, &props);
  for (uint32_t i = 0; i < props.memoryTypeCount; ++i)
    if ((type_bits & (1u << i)) && (props.memoryTypes[i].propertyFlags & flags) == flags) return i;
  throw std::runtime_error("renderer: no suitable Vulkan memory type for the screenshot");
}

}  // namespace

Renderer::Renderer(int width, int height, const char* title) {
  glfwSetErrorCallback(on_glfw_error);
  if (!glfwInit())
    throw std::runtime_error("cannot open a window: GLFW failed to initialize (no display?)");
  glfwWindowHint(GLFW_CLIENT_API, GLFW_NO_API);
  window_ = glfwCreateWindow(width, height, title, nullptr, nullptr);
  if (!window_) throw std::runtime_error("cannot open a window (no display?)");
  // Below this the three columns no longer fit side by side.
  glfwSetWindowSizeLimits(window_, kMinWidth, kMinHeight, GLFW_DONT_CARE, GLFW_DONT_CARE);
  if (!glfwVulkanSupported()) throw std::runtime_error("GLFW finds no Vulkan loader or driver");

  uint32_t ext_count = 0;
  const char** extensions = glfwGetRequiredInstanceExtensions(&ext_count);
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "nibble-chat";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ici{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ici.pApplicationInfo = &app;
  ici.enabledExtensionCount = ext_count;
  ici.ppEnabledExtensionNames = extensions;
  auto create_instance =
      reinterpret_cast<PFN_vkCreateInstance>(load_function(VK_NULL_HANDLE, "vkCreateInstance"));
  check(create_instance(&ici, nullptr, &instance_), "vkCreateInstance");
  load_functions(instance_);
  // Dear ImGui's backend and its ImGui_ImplVulkanH_* helpers load theirs the same way.
  ImGui_ImplVulkan_LoadFunctions(
      [](const char* name, void* instance) {
        return load_function(static_cast<VkInstance>(instance), name);
      },
      instance_);
  check(glfwCreateWindowSurface(instance_, window_, nullptr, &surface_),
        "creating the window surface");

  create_device();
  int w, h;
  glfwGetFramebufferSize(window_, &w, &h);
  create_swapchain(w, h);
  init_imgui();
}

Renderer::~Renderer() {
  if (device_) vkDeviceWaitIdle(device_);
  if (imgui_ready_) {
    ImGui_ImplVulkan_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
  }
  if (wd_.Swapchain)
    ImGui_ImplVulkanH_DestroyWindow(instance_, device_, &wd_, nullptr);
  else if (surface_)
    vkDestroySurfaceKHR(instance_, surface_, nullptr);
  if (descriptor_pool_) vkDestroyDescriptorPool(device_, descriptor_pool_, nullptr);
  if (device_) vkDestroyDevice(device_, nullptr);
  if (instance_) vkDestroyInstance(instance_, nullptr);
  if (window_) glfwDestroyWindow(window_);
  glfwTerminate();
}

void Renderer::create_device() {
  uint32_t count = 0;
  check(vkEnumeratePhysicalDevices(instance_, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> gpus(count);
  check(vkEnumeratePhysicalDevices(instance_, &count, gpus.data()), "vkEnumeratePhysicalDevices");
  // The best-ranked device that can draw to our window.
  int best_rank = 1 << 30;
  for (uint32_t i = 0; i < count; ++i) {
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(gpus[i], &props);
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(gpus[i], &nq, nullptr);
    std::vector<VkQueueFamilyProperties> queues(nq);
    vkGetPhysicalDeviceQueueFamilyProperties(gpus[i], &nq, queues.data());
    for (uint32_t q = 0; q < nq; ++q) {
      VkBool32 present = VK_FALSE;
      vkGetPhysicalDeviceSurfaceSupportKHR(gpus[i], q, surface_, &present);
      if (!(queues[q].queueFlags & VK_QUEUE_GRAPHICS_BIT) || !present) continue;
      if (device_rank(props.deviceType) < best_rank) {
        best_rank = device_rank(props.deviceType);
        physical_ = gpus[i];
        device_index_ = int(i);
        software_ = props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
        queue_family_ = q;
      }
      break;
    }
  }
  if (!physical_) throw std::runtime_error("no Vulkan device can draw to this window");

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = queue_family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  const char* device_extensions[] = {VK_KHR_SWAPCHAIN_EXTENSION_NAME};
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  dci.enabledExtensionCount = 1;
  dci.ppEnabledExtensionNames = device_extensions;
  check(vkCreateDevice(physical_, &dci, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  // Dear ImGui needs one combined image sampler (the font atlas).
  VkDescriptorPoolSize size{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 8};
  VkDescriptorPoolCreateInfo pci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pci.flags = VK_DESCRIPTOR_POOL_CREATE_FREE_DESCRIPTOR_SET_BIT;
  pci.maxSets = 8;
  pci.poolSizeCount = 1;
  pci.pPoolSizes = &size;
  check(vkCreateDescriptorPool(device_, &pci, nullptr, &descriptor_pool_),
        "vkCreateDescriptorPool");
}

void Renderer::create_swapchain(int width, int height) {
  wd_.Surface = surface_;
  const VkFormat formats[] = {VK_FORMAT_B8G8R8A8_UNORM, VK_FORMAT_R8G8B8A8_UNORM,
                              VK_FORMAT_B8G8R8_UNORM, VK_FORMAT_R8G8B8_UNORM};
  wd_.SurfaceFormat = ImGui_ImplVulkanH_SelectSurfaceFormat(physical_, surface_, formats, 4,
                                                            VK_COLORSPACE_SRGB_NONLINEAR_KHR);
  const VkPresentModeKHR modes[] = {VK_PRESENT_MODE_FIFO_KHR};
  wd_.PresentMode = ImGui_ImplVulkanH_SelectPresentMode(physical_, surface_, modes, 1);
  ImGui_ImplVulkanH_CreateOrResizeWindow(instance_, physical_, device_, &wd_, queue_family_,
                                         nullptr, width, height, kMinImageCount);
}

void Renderer::init_imgui() {
  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGui::GetIO().IniFilename = nullptr;  // the layout is fixed; nothing to remember
  ImGui_ImplGlfw_InitForVulkan(window_, true);
  ImGui_ImplVulkan_InitInfo info{};
  info.Instance = instance_;
  info.PhysicalDevice = physical_;
  info.Device = device_;
  info.QueueFamily = queue_family_;
  info.Queue = queue_;
  info.DescriptorPool = descriptor_pool_;
  info.MinImageCount = kMinImageCount;
  info.ImageCount = wd_.ImageCount;
  info.MSAASamples = VK_SAMPLE_COUNT_1_BIT;
  info.CheckVkResultFn = check_for_imgui;
  ImGui_ImplVulkan_Init(&info, wd_.RenderPass);
  imgui_ready_ = true;
  load_fonts();

  // Upload the font atlas once, through the first frame's command buffer.
  ImGui_ImplVulkanH_Frame& fd = wd_.Frames[wd_.FrameIndex];
  check(vkResetCommandPool(device_, fd.CommandPool, 0));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(fd.CommandBuffer, &begin));
  ImGui_ImplVulkan_CreateFontsTexture(fd.CommandBuffer);
  check(vkEndCommandBuffer(fd.CommandBuffer));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &fd.CommandBuffer;
  check(vkQueueSubmit(queue_, 1, &submit, VK_NULL_HANDLE), "uploading the fonts");
  check(vkDeviceWaitIdle(device_));
  ImGui_ImplVulkan_DestroyFontUploadObjects();
}

void Renderer::load_fonts() {
  // DejaVu (Debian's fonts-dejavu-core) when installed, else Dear ImGui's built-in bitmap font.
  static const ImWchar ranges[] = {0x0020, 0x024F,  // Latin, Latin-1, Latin Extended
                                   0x2000, 0x206F,  // punctuation: dashes, quotes, ellipsis
                                   0x2190, 0x21FF,  // arrows
                                   0x2500, 0x25FF,  // box drawing, shapes
                                   0};
  ImGuiIO& io = ImGui::GetIO();
  const char* dir = "/usr/share/fonts/truetype/dejavu/";
  const std::string sans = std::string(dir) + "DejaVuSans.ttf";
  const std::string mono = std::string(dir) + "DejaVuSansMono.ttf";
  if (std::FILE* f = std::fopen(sans.c_str(), "rb")) {
    std::fclose(f);
    fonts_.text = io.Fonts->AddFontFromFileTTF(sans.c_str(), 16.0f, nullptr, ranges);
    fonts_.mono = io.Fonts->AddFontFromFileTTF(mono.c_str(), 15.0f, nullptr, ranges);
    fonts_.large = io.Fonts->AddFontFromFileTTF(sans.c_str(), 22.0f, nullptr, ranges);
  }
  if (!fonts_.text) fonts_.text = io.Fonts->AddFontDefault();
  if (!fonts_.mono) fonts_.mono = fonts_.text;
  if (!fonts_.large) fonts_.large = fonts_.text;
}

void Renderer::begin_frame() {
  if (rebuild_swapchain_) {
    int w, h;
    glfwGetFramebufferSize(window_, &w, &h);
    if (w > 0 && h > 0) {
      ImGui_ImplVulkan_SetMinImageCount(kMinImageCount);
      ImGui_ImplVulkanH_CreateOrResizeWindow(instance_, physical_, device_, &wd_, queue_family_,
                                             nullptr, w, h, kMinImageCount);
      wd_.FrameIndex = 0;
      rebuild_swapchain_ = false;
    }
  }
  ImGui_ImplVulkan_NewFrame();
  ImGui_ImplGlfw_NewFrame();
  ImGui::NewFrame();
}

void Renderer::end_frame() {
  ImGui::Render();
  ImDrawData* draw_data = ImGui::GetDrawData();
  if (draw_data->DisplaySize.x <= 0 || draw_data->DisplaySize.y <= 0) return;  // minimized
  const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
  wd_.ClearValue.color = {{bg.x, bg.y, bg.z, 1.0f}};
  render(draw_data);
  present();
}

void Renderer::render(ImDrawData* draw_data) {
  VkSemaphore acquired = wd_.FrameSemaphores[wd_.SemaphoreIndex].ImageAcquiredSemaphore;
  VkSemaphore done = wd_.FrameSemaphores[wd_.SemaphoreIndex].RenderCompleteSemaphore;
  VkResult r = vkAcquireNextImageKHR(device_, wd_.Swapchain, UINT64_MAX, acquired, VK_NULL_HANDLE,
                                     &wd_.FrameIndex);
  if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) {
    rebuild_swapchain_ = true;
    return;
  }
  check(r, "vkAcquireNextImageKHR");

  ImGui_ImplVulkanH_Frame& fd = wd_.Frames[wd_.FrameIndex];
  check(vkWaitForFences(device_, 1, &fd.Fence, VK_TRUE, UINT64_MAX), "waiting for a frame");
  check(vkResetFences(device_, 1, &fd.Fence));
  check(vkResetCommandPool(device_, fd.CommandPool, 0));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(fd.CommandBuffer, &begin));
  VkRenderPassBeginInfo rp{VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO};
  rp.renderPass = wd_.RenderPass;
  rp.framebuffer = fd.Framebuffer;
  rp.renderArea.extent = {uint32_t(wd_.Width), uint32_t(wd_.Height)};
  rp.clearValueCount = 1;
  rp.pClearValues = &wd_.ClearValue;
  vkCmdBeginRenderPass(fd.CommandBuffer, &rp, VK_SUBPASS_CONTENTS_INLINE);
  ImGui_ImplVulkan_RenderDrawData(draw_data, fd.CommandBuffer);
  vkCmdEndRenderPass(fd.CommandBuffer);
  check(vkEndCommandBuffer(fd.CommandBuffer));

  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT;
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.waitSemaphoreCount = 1;
  submit.pWaitSemaphores = &acquired;
  submit.pWaitDstStageMask = &wait_stage;
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &fd.CommandBuffer;
  submit.signalSemaphoreCount = 1;
  submit.pSignalSemaphores = &done;
  check(vkQueueSubmit(queue_, 1, &submit, fd.Fence), "submitting a frame");
}

void Renderer::present() {
  if (rebuild_swapchain_) return;
  VkSemaphore done = wd_.FrameSemaphores[wd_.SemaphoreIndex].RenderCompleteSemaphore;
  VkPresentInfoKHR info{VK_STRUCTURE_TYPE_PRESENT_INFO_KHR};
  info.waitSemaphoreCount = 1;
  info.pWaitSemaphores = &done;
  info.swapchainCount = 1;
  info.pSwapchains = &wd_.Swapchain;
  info.pImageIndices = &wd_.FrameIndex;
  const VkResult r = vkQueuePresentKHR(queue_, &info);
  if (r == VK_ERROR_OUT_OF_DATE_KHR || r == VK_SUBOPTIMAL_KHR) {
    rebuild_swapchain_ = true;
    return;
  }
  check(r, "vkQueuePresentKHR");
  wd_.SemaphoreIndex = (wd_.SemaphoreIndex + 1) % wd_.ImageCount;
}

void Renderer::save_png(const std::filesystem::path& path) {
  ImDrawData* draw_data = ImGui::GetDrawData();
  if (!draw_data) throw std::runtime_error("no frame has been drawn yet");
  const uint32_t w = uint32_t(wd_.Width), h = uint32_t(wd_.Height);
  const VkFormat format = wd_.SurfaceFormat.format;
  check(vkDeviceWaitIdle(device_));

  // An image like a swapchain image, and a render pass compatible with ImGui's pipeline (same
  // format and samples) that leaves it ready to be copied out.
  VkImageCreateInfo ici{VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO};
  ici.imageType = VK_IMAGE_TYPE_2D;
  ici.format = format;
  ici.extent = {w, h, 1};
  ici.mipLevels = ici.arrayLayers = 1;
  ici.samples = VK_SAMPLE_COUNT_1_BIT;
  ici.tiling = VK_IMAGE_TILING_OPTIMAL;
  ici.usage = VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_TRANSFER_SRC_BIT;
  VkImage image;
  check(vkCreateImage(device_, &ici, nullptr, &image), "creating the screenshot image");
  VkMemoryRequirements req;
  vkGetImageMemoryRequirements(device_, image, &req);
  VkMemoryAllocateInfo mai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  mai.allocationSize = req.size;
  mai.memoryTypeIndex =
      find_memory_type(physical_, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  VkDeviceMemory image_memory;
  check(vkAllocateMemory(device_, &mai, nullptr, &image_memory));
  check(vkBindImageMemory(device_, image, image_memory, 0));

  VkImageViewCreateInfo vci{VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO};
  vci.image = image;
  vci.viewType = VK_IMAGE_VIEW_TYPE_2D;
  vci.format = format;
  vci.subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1};
  VkImageView view;
  check(vkCreateImageView(device_, &vci, nullptr, &view));

  VkAttachmentDescription att{};
  att.format = format;
  att.samples = VK_SAMPLE_COUNT_1_BIT;
  att.loadOp = VK_ATTACHMENT_LOAD_OP_CLEAR;
  att.storeOp = VK_ATTACHMENT_STORE_OP_STORE;
  att.stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE;
  att.stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE;
  att.initialLayout = VK_IMAGE_LAYOUT_UNDEFINED;
  att.finalLayout = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
  VkAttachmentReference ref{0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
  VkSubpassDescription sub{};
  sub.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS;
  sub.colorAttachmentCount = 1;
  sub.pColorAttachments = &ref;
  VkRenderPassCreateInfo rpci{VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO};
  rpci.attachmentCount = 1;
  rpci.pAttachments = &att;
  rpci.subpassCount = 1;
  rpci.pSubpasses = &sub;
  VkRenderPass pass;
  check(vkCreateRenderPass(device_, &rpci, nullptr, &pass));
  VkFramebufferCreateInfo fci{VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO};
  fci.renderPass = pass;
  fci.attachmentCount = 1;
  fci.pAttachments = &view;
  fci.width = w;
  fci.height = h;
  fci.layers = 1;
  VkFramebuffer framebuffer;
  check(vkCreateFramebuffer(device_, &fci, nullptr, &framebuffer));

  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = VkDeviceSize(w) * h * 4;
  bci.usage = VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  VkBuffer buffer;
  check(vkCreateBuffer(device_, &bci, nullptr, &buffer));
  vkGetBufferMemoryRequirements(device_, buffer, &req);
  mai.allocationSize = req.size;
  mai.memoryTypeIndex =
      find_memory_type(physical_, req.memoryTypeBits,
                       VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  VkDeviceMemory buffer_memory;
  check(vkAllocateMemory(device_, &mai, nullptr, &buffer_memory));
  check(vkBindBufferMemory(device_, buffer, buffer_memory, 0));

  VkCommandPoolCreateInfo cpci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  cpci.queueFamilyIndex = queue_family_;
  VkCommandPool pool;
  check(vkCreateCommandPool(device_, &cpci, nullptr, &pool));
  VkCommandBufferAllocateInfo cbai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  cbai.commandPool = pool;
  cbai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  cbai.commandBufferCount = 1;
  VkCommandBuffer cmd;
  check(vkAllocateCommandBuffers(device_, &cbai, &cmd));
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(cmd, &begin));
  VkRenderPassBeginInfo rp{VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO};
  rp.renderPass = pass;
  rp.framebuffer = framebuffer;
  rp.renderArea.extent = {w, h};
  rp.clearValueCount = 1;
  rp.pClearValues = &wd_.ClearValue;
  vkCmdBeginRenderPass(cmd, &rp, VK_SUBPASS_CONTENTS_INLINE);
  ImGui_ImplVulkan_RenderDrawData(draw_data, cmd);
  vkCmdEndRenderPass(cmd);
  VkBufferImageCopy copy{};
  copy.imageSubresource = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 0, 1};
  copy.imageExtent = {w, h, 1};
  vkCmdCopyImageToBuffer(cmd, image, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, buffer, 1, &copy);
  check(vkEndCommandBuffer(cmd));
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd;
  check(vkQueueSubmit(queue_, 1, &submit, VK_NULL_HANDLE), "rendering the screenshot");
  check(vkDeviceWaitIdle(device_));

  void* mapped = nullptr;
  check(vkMapMemory(device_, buffer_memory, 0, VK_WHOLE_SIZE, 0, &mapped));
  std::vector<uint8_t> rgba(static_cast<uint8_t*>(mapped),
                            static_cast<uint8_t*>(mapped) + bci.size);
  vkUnmapMemory(device_, buffer_memory);
  const bool bgr = format == VK_FORMAT_B8G8R8A8_UNORM || format == VK_FORMAT_B8G8R8A8_SRGB;
  for (size_t i = 0; i < rgba.size(); i += 4) {
    if (bgr) std::swap(rgba[i], rgba[i + 2]);
    rgba[i + 3] = 255;
  }

  vkDestroyCommandPool(device_, pool, nullptr);
  vkDestroyBuffer(device_, buffer, nullptr);
  vkFreeMemory(device_, buffer_memory, nullptr);
  vkDestroyFramebuffer(device_, framebuffer, nullptr);
  vkDestroyRenderPass(device_, pass, nullptr);
  vkDestroyImageView(device_, view, nullptr);
  vkDestroyImage(device_, image, nullptr);
  vkFreeMemory(device_, image_memory, nullptr);

  if (!stbi_write_png(path.c_str(), int(w), int(h), 4, rgba.data(), int(w) * 4))
    throw std::runtime_error("cannot write " + path.string());
}

void Renderer::set_title(const std::string& title) {
  glfwSetWindowTitle(window_, title.c_str());
}

std::string Renderer::device_name() const {
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(physical_, &props);
  return props.deviceName;
}

uint64_t Renderer::device_local_bytes() const {
  VkPhysicalDeviceMemoryProperties props;
  vkGetPhysicalDeviceMemoryProperties(physical_, &props);
  uint64_t best = 0;
  for (uint32_t i = 0; i < props.memoryHeapCount; ++i)
    if (props.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      best = std::max<uint64_t>(best, props.memoryHeaps[i].size);
  return best;
}

}  // namespace nibble::chat
